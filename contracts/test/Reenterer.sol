// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @notice Test-only actor: makes calls as itself and, when it receives ETH, tries once to
///         re-enter a configured target. Can also refuse ETH to exercise failed transfers.
contract Reenterer {
    address public reenterTarget;
    bytes public reenterData;
    bool public reenterAttempted;
    bool public reenterSucceeded;
    bytes public reenterReturn;
    bool public rejectPayments;
    uint256 public received;

    error Rejected();
    error CallFailed(bytes returnData);

    /// @notice On the next incoming payment, call `target` with `data` (once).
    function setReenter(address target, bytes calldata data) external {
        reenterTarget = target;
        reenterData = data;
        reenterAttempted = false;
        reenterSucceeded = false;
        delete reenterReturn;
    }

    function setRejectPayments(bool reject) external {
        rejectPayments = reject;
    }

    /// @notice Call `target` with `data` and `msg.value` as this contract; bubbles up reverts.
    function execute(address target, bytes calldata data) external payable returns (bytes memory) {
        (bool ok, bytes memory ret) = target.call{value: msg.value}(data);
        if (!ok) {
            assembly {
                revert(add(ret, 32), mload(ret))
            }
        }
        return ret;
    }

    receive() external payable {
        if (rejectPayments) revert Rejected();
        received += msg.value;
        if (reenterTarget != address(0) && !reenterAttempted) {
            reenterAttempted = true;
            (bool ok, bytes memory ret) = reenterTarget.call(reenterData);
            reenterSucceeded = ok;
            reenterReturn = ret;
        }
    }
}
