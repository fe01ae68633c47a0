// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";

/// @title Treasury
/// @notice Holds ETH; anyone can send, only the owner can withdraw. Base of SlashTreasury and
///         RewardTreasury (two deployments so protocol income and slashed stake stay apart).
abstract contract Treasury is Ownable, ReentrancyGuard {
    /// @notice `from` sent `amount` wei.
    event Received(address indexed from, uint256 amount);
    /// @notice The owner sent `amount` wei to `to`.
    event Withdrawn(address indexed to, uint256 amount);

    /// @notice A zero address was given.
    error ZeroAddress();
    /// @notice The treasury holds less than requested.
    error InsufficientBalance(uint256 balance, uint256 requested);
    /// @notice An ETH transfer failed.
    error TransferFailed(address to, uint256 amount);

    constructor() Ownable(msg.sender) {}

    /// @notice Accept ETH from anyone.
    receive() external payable {
        emit Received(msg.sender, msg.value);
    }

    /// @notice Send `amount` wei to `to` (owner only).
    function withdraw(address payable to, uint256 amount) external onlyOwner nonReentrant {
        if (to == address(0)) revert ZeroAddress();
        uint256 balance = address(this).balance;
        if (amount > balance) revert InsufficientBalance(balance, amount);
        emit Withdrawn(to, amount);
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert TransferFailed(to, amount);
    }
}
