// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {StateProof} from "../src/StateProof.sol";

/// @notice Test-only wrapper exposing the StateProof library (not deployed in production).
contract StateProofHarness {
    function verify(bytes32 stateRoot, uint256 subtree, bytes32 leaf, bytes32[] calldata proof)
        external
        pure
        returns (bool)
    {
        return StateProof.verify(stateRoot, subtree, leaf, proof);
    }

    function accountLeaf(address a, bytes32 p, uint256 s, uint256 cs, uint256 cr) external pure returns (bytes32) {
        return StateProof.accountLeaf(a, p, s, cs, cr);
    }

    function taskLeaf(uint256 id, address o, uint256 e, uint256 c, uint256 t, uint256 st, bytes32 d)
        external
        pure
        returns (bytes32)
    {
        return StateProof.taskLeaf(id, o, e, c, t, st, d);
    }
}
