// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Treasury} from "./Treasury.sol";

/// @title RewardTreasury
/// @notice Receives task base fees, the protocol's share of charged escrow and division dust
///         from the RewardManager; owner-only withdraw.
contract RewardTreasury is Treasury {}
