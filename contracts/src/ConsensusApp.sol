// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IForceMoveApp} from "./IForceMoveApp.sol";
import {SignerMask} from "./SignerMask.sol";

/// @title Rules of a consensus (ledger) channel: a state is supported only when
/// every participant signed it, with no proof.
contract ConsensusApp is IForceMoveApp {
    function stateIsSupported(
        FixedPart calldata fixedPart,
        RecoveredVariablePart[] calldata proof,
        RecoveredVariablePart calldata candidate
    ) external pure override returns (bool, string memory) {
        require(proof.length == 0, "|proof|!=0");
        require(
            SignerMask.isUnanimous(candidate.signedBy, fixedPart.participants.length), "!unanimous"
        );
        return (true, "");
    }
}
