// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {INitroTypes} from "./INitroTypes.sol";

/// @title The rules of a channel application.
interface IForceMoveApp is INitroTypes {
    /// @notice Whether `candidate`, backed by `proof`, is supported. Reverts or
    /// returns false with a reason when it is not.
    function stateIsSupported(
        FixedPart calldata fixedPart,
        RecoveredVariablePart[] calldata proof,
        RecoveredVariablePart calldata candidate
    ) external view returns (bool, string memory);
}
