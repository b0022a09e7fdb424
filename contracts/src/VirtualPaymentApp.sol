// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IForceMoveApp} from "./IForceMoveApp.sol";
import {SignerMask} from "./SignerMask.sol";

/// @title Rules of a virtual payment channel.
/// @notice Participants are [payer, intermediaries..., payee]; the outcome is one
/// native-asset exit [payer, payee]. Turns 0 and 1 (pre- and post-fund) need
/// every signature. A turn-2 redemption needs the payee's signature, a proof of
/// the unanimous post-fund state, and appData carrying a voucher
/// abi.encode((uint256 amount, (uint8 v, bytes32 r, bytes32 s))) signed by the
/// payer over keccak256(abi.encode(channelId, amount)); it moves exactly
/// `amount` from the payer to the payee.
contract VirtualPaymentApp is IForceMoveApp {
    struct Voucher {
        uint256 amount;
        Signature signature;
    }

    function stateIsSupported(
        FixedPart calldata fixedPart,
        RecoveredVariablePart[] calldata proof,
        RecoveredVariablePart calldata candidate
    ) external pure override returns (bool, string memory) {
        uint256 participantCount = fixedPart.participants.length;
        if (proof.length == 0) {
            require(
                SignerMask.isUnanimous(candidate.signedBy, participantCount),
                "!unanimous; |proof|=0"
            );
            require(candidate.variablePart.turnNum <= 1, "bad candidate turnNum; |proof|=0");
            return (true, "");
        }
        require(proof.length == 1, "bad proof length");
        require(proof[0].variablePart.turnNum == 1, "bad proof[0].turnNum; |proof|=1");
        require(
            SignerMask.isUnanimous(proof[0].signedBy, participantCount),
            "postfund !unanimous; |proof|=1"
        );
        require(candidate.variablePart.turnNum == 2, "bad candidate turnNum; |proof|=1");
        require(
            (candidate.signedBy >> (participantCount - 1)) & 1 == 1, "redemption not signed by Bob"
        );
        uint256 paid = _voucherAmount(fixedPart, candidate.variablePart.appData);
        _requireAdjusted(proof[0].variablePart.outcome, candidate.variablePart.outcome, paid);
        return (true, "");
    }

    function _voucherAmount(FixedPart calldata fixedPart, bytes calldata appData)
        internal
        pure
        returns (uint256)
    {
        Voucher memory voucher = abi.decode(appData, (Voucher));
        bytes32 channelId = keccak256(
            abi.encode(
                fixedPart.participants,
                fixedPart.channelNonce,
                fixedPart.appDefinition,
                fixedPart.challengeDuration
            )
        );
        address signer = SignerMask.recover(
            keccak256(abi.encode(channelId, voucher.amount)),
            voucher.signature.v,
            voucher.signature.r,
            voucher.signature.s
        );
        require(signer == fixedPart.participants[0], "invalid signature for voucher");
        return voucher.amount;
    }

    function _requireAdjusted(
        SingleAssetExit[] calldata before,
        SingleAssetExit[] calldata next,
        uint256 paid
    ) internal pure {
        require(
            before.length == 1 && next.length == 1 && before[0].asset == address(0)
                && next[0].asset == address(0),
            "only native asset allowed"
        );
        uint256 payerBefore = before[0].allocations[0].amount;
        require(
            paid <= payerBefore && next[0].allocations[0].amount == payerBefore - paid,
            "Alice not adjusted correctly"
        );
        require(next[0].allocations[1].amount == paid, "Bob not adjusted correctly");
    }
}
