// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Treasury} from "./Treasury.sol";

/// @title SlashTreasury
/// @notice Receives 90 % of every slash moved by the SlashingManager; owner-only withdraw.
contract SlashTreasury is Treasury {}
