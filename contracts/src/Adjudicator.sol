// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {INitroTypes} from "./INitroTypes.sol";
import {IForceMoveApp} from "./IForceMoveApp.sol";
import {SignerMask} from "./SignerMask.sol";

interface IERC20Transfers {
    function transfer(address to, uint256 amount) external returns (bool);

    function transferFrom(address from, address to, uint256 amount) external returns (bool);
}

/// @title scnode's Nitro adjudicator.
/// @notice Holds native coin and ERC20 tokens for state channels and pays them
/// out by the channels' outcomes. Interface, events, revert reasons and the
/// channel status layout follow the Nitro adjudicator 2.x, so off-chain code
/// built for one works with the other.
/// @dev statusOf[channelId] packs turnNumRecord (48 bits) | finalizesAt (48 bits) |
/// fingerprint (160 bits), where the fingerprint is the low 160 bits of
/// keccak256(abi.encode(stateHash, outcomeHash)). finalizesAt 0 means open.
contract Adjudicator is INitroTypes {
    /// @dev Allocation type of a guarantee (the exit format: simple, withdrawHelper, guarantee).
    uint8 internal constant GUARANTEE = 2;

    struct ReclaimArgs {
        bytes32 sourceChannelId;
        bytes32 sourceStateHash;
        bytes sourceOutcomeBytes;
        uint256 sourceAssetIndex;
        uint256 indexOfTargetInSource;
        bytes32 targetStateHash;
        bytes targetOutcomeBytes;
        uint256 targetAssetIndex;
    }

    event Deposited(bytes32 indexed destination, address asset, uint256 destinationHoldings);
    event AllocationUpdated(
        bytes32 indexed channelId,
        uint256 assetIndex,
        uint256 initialHoldings,
        uint256 finalHoldings
    );
    event Reclaimed(bytes32 indexed channelId, uint256 assetIndex);
    event ChallengeRegistered(
        bytes32 indexed channelId,
        uint48 finalizesAt,
        SignedVariablePart[] proof,
        SignedVariablePart candidate
    );
    event ChallengeCleared(bytes32 indexed channelId, uint48 newTurnNumRecord);
    event Checkpointed(bytes32 indexed channelId, uint48 newTurnNumRecord);
    event Concluded(bytes32 indexed channelId, uint48 finalizesAt);

    mapping(address => mapping(bytes32 => uint256)) public holdings;
    mapping(bytes32 => bytes32) public statusOf;

    // ------------------------------------------------------------------ deposits

    /// @notice Adds `amount` of `asset` to the holdings of `channelId`.
    /// @dev `expectedHeld` must equal the current holdings, so that a deposit
    /// made on a stale view of the chain fails instead of over-funding.
    function deposit(address asset, bytes32 channelId, uint256 expectedHeld, uint256 amount)
        external
        payable
    {
        require(!_isExternal(channelId), "Deposit to external destination");
        uint256 held = holdings[asset][channelId];
        require(held == expectedHeld, "held != expectedHeld");
        held += amount;
        // Effects first: a token calling back in sees the updated holdings.
        holdings[asset][channelId] = held;
        if (asset == address(0)) {
            require(msg.value == amount, "Incorrect msg.value for deposit");
        } else {
            require(msg.value == 0, "Native coin sent with token deposit");
            bytes memory call =
                abi.encodeCall(IERC20Transfers.transferFrom, (msg.sender, address(this), amount));
            _callToken(asset, call);
        }
        emit Deposited(channelId, asset, held);
    }

    // ------------------------------------------------------------------ disputes

    /// @notice Registers a challenge with a supported state; the channel
    /// finalizes with it after the challenge duration unless cleared.
    function challenge(
        FixedPart calldata fixedPart,
        SignedVariablePart[] calldata proof,
        SignedVariablePart calldata candidate,
        Signature calldata challengerSig
    ) external {
        bytes32 channelId = _channelId(fixedPart);
        uint48 turnNum = candidate.variablePart.turnNum;
        (uint48 turnNumRecord, uint48 finalizesAt,) = _unpack(statusOf[channelId]);
        if (finalizesAt == 0) {
            require(turnNum >= turnNumRecord, "turnNumRecord decreased.");
        } else {
            require(finalizesAt > block.timestamp, "Channel finalized.");
            require(turnNum > turnNumRecord, "turnNumRecord not increased.");
        }
        bytes32 stateHash = _requireSupported(fixedPart, channelId, proof, candidate);
        address challenger = SignerMask.recover(
            keccak256(abi.encode(stateHash, "forceMove")),
            challengerSig.v,
            challengerSig.r,
            challengerSig.s
        );
        require(_indexOf(fixedPart.participants, challenger) != type(uint256).max,
            "Challenger is not a participant");
        uint48 newFinalizesAt = uint48(block.timestamp) + fixedPart.challengeDuration;
        emit ChallengeRegistered(channelId, newFinalizesAt, proof, candidate);
        statusOf[channelId] = _status(
            turnNum, newFinalizesAt, stateHash, _outcomeHash(candidate.variablePart.outcome)
        );
    }

    /// @notice Records a supported state with a higher turn number, clearing
    /// any running challenge.
    function checkpoint(
        FixedPart calldata fixedPart,
        SignedVariablePart[] calldata proof,
        SignedVariablePart calldata candidate
    ) external {
        bytes32 channelId = _channelId(fixedPart);
        uint48 turnNum = candidate.variablePart.turnNum;
        (uint48 turnNumRecord, uint48 finalizesAt,) = _unpack(statusOf[channelId]);
        require(finalizesAt == 0 || finalizesAt > block.timestamp, "Channel finalized.");
        require(turnNum > turnNumRecord, "turnNumRecord not increased.");
        _requireSupported(fixedPart, channelId, proof, candidate);
        statusOf[channelId] = _status(turnNum, 0, bytes32(0), bytes32(0));
        if (finalizesAt == 0) {
            emit Checkpointed(channelId, turnNum);
        } else {
            emit ChallengeCleared(channelId, turnNum);
        }
    }

    /// @notice Finalizes the channel at once with a final state signed by everyone.
    function conclude(FixedPart calldata fixedPart, SignedVariablePart calldata candidate)
        external
    {
        bytes32 channelId = _requireConcludable(fixedPart, candidate);
        statusOf[channelId] = _status(
            0, uint48(block.timestamp), bytes32(0), _outcomeHash(candidate.variablePart.outcome)
        );
        emit Concluded(channelId, uint48(block.timestamp));
    }

    /// @notice conclude, then transferAllAssets with the concluded outcome.
    function concludeAndTransferAllAssets(
        FixedPart calldata fixedPart,
        SignedVariablePart calldata candidate
    ) external {
        bytes32 channelId = _requireConcludable(fixedPart, candidate);
        emit Concluded(channelId, uint48(block.timestamp));
        _transferAll(
            channelId, candidate.variablePart.outcome, bytes32(0), 0, uint48(block.timestamp)
        );
    }

    /// @notice Whether the app of the channel supports `candidate` given `proof`.
    function stateIsSupported(
        FixedPart calldata fixedPart,
        SignedVariablePart[] calldata proof,
        SignedVariablePart calldata candidate
    ) external view returns (bool, string memory) {
        bytes32 channelId = _channelId(fixedPart);
        (RecoveredVariablePart[] memory recoveredProof, RecoveredVariablePart memory recovered,) =
            _recoverAll(fixedPart, channelId, proof, candidate);
        return IForceMoveApp(fixedPart.appDefinition).stateIsSupported(
            fixedPart, recoveredProof, recovered
        );
    }

    /// @notice The parts of a channel's status.
    function unpackStatus(bytes32 channelId)
        external
        view
        returns (uint48 turnNumRecord, uint48 finalizesAt, uint160 fingerprint)
    {
        return _unpack(statusOf[channelId]);
    }

    // ------------------------------------------------------------------ payouts

    /// @notice Pays out every asset of a finalized channel's outcome, in order,
    /// as far as its holdings go.
    function transferAllAssets(
        bytes32 channelId,
        SingleAssetExit[] calldata outcome,
        bytes32 stateHash
    ) external {
        (uint48 turnNumRecord, uint48 finalizesAt, uint160 fingerprint) =
            _unpack(statusOf[channelId]);
        _requireFinalized(finalizesAt);
        require(
            fingerprint == _fingerprint(stateHash, _outcomeHash(outcome)), "incorrect fingerprint"
        );
        _transferAll(channelId, outcome, stateHash, turnNumRecord, finalizesAt);
    }

    /// @notice Pays out the allocations at `indices` (all when empty) of one asset.
    function transfer(
        uint256 assetIndex,
        bytes32 fromChannelId,
        bytes calldata outcomeBytes,
        bytes32 stateHash,
        uint256[] calldata indices
    ) external {
        for (uint256 i = 1; i < indices.length; i++) {
            require(indices[i - 1] < indices[i], "Indices must be sorted");
        }
        SingleAssetExit[] memory outcome =
            _finalizedOutcome(fromChannelId, stateHash, outcomeBytes);
        _applyTransfer(assetIndex, fromChannelId, outcome, stateHash, indices);
    }

    function _applyTransfer(
        uint256 assetIndex,
        bytes32 channelId,
        SingleAssetExit[] memory outcome,
        bytes32 stateHash,
        uint256[] calldata indices
    ) internal {
        address asset = outcome[assetIndex].asset;
        uint256 initialHoldings = holdings[asset][channelId];
        (Allocation[] memory remaining,, Allocation[] memory payouts, uint256 total) =
            compute_transfer_effects_and_interactions(
                initialHoldings, outcome[assetIndex].allocations, indices
            );
        uint256 finalHoldings = initialHoldings - total;
        holdings[asset][channelId] = finalHoldings;
        outcome[assetIndex].allocations = remaining;
        (uint48 turnNumRecord, uint48 finalizesAt,) = _unpack(statusOf[channelId]);
        statusOf[channelId] =
            _status(turnNumRecord, finalizesAt, stateHash, keccak256(abi.encode(outcome)));
        emit AllocationUpdated(channelId, assetIndex, initialHoldings, finalHoldings);
        for (uint256 i = 0; i < payouts.length; i++) {
            _payOut(asset, payouts[i].destination, payouts[i].amount);
        }
    }

    /// @notice What paying out `indices` (all when empty) of `allocations`
    /// from `initialHoldings` leaves and pays.
    function compute_transfer_effects_and_interactions(
        uint256 initialHoldings,
        Allocation[] memory allocations,
        uint256[] memory indices
    )
        public
        pure
        returns (
            Allocation[] memory newAllocations,
            bool allocatesOnlyZeros,
            Allocation[] memory exitAllocations,
            uint256 totalPayouts
        )
    {
        bool all = indices.length == 0;
        newAllocations = new Allocation[](allocations.length);
        exitAllocations = new Allocation[](all ? allocations.length : indices.length);
        allocatesOnlyZeros = true;
        uint256 surplus = initialHoldings;
        uint256 k = 0;
        for (uint256 i = 0; i < allocations.length; i++) {
            Allocation memory a = allocations[i];
            uint256 affordable = a.amount < surplus ? a.amount : surplus;
            uint256 left = a.amount;
            if (all || (k < indices.length && indices[k] == i)) {
                require(a.allocationType != GUARANTEE, "cannot transfer a guarantee");
                left = a.amount - affordable;
                exitAllocations[k] =
                    Allocation(a.destination, affordable, a.allocationType, a.metadata);
                totalPayouts += affordable;
                k++;
            }
            newAllocations[i] = Allocation(a.destination, left, a.allocationType, a.metadata);
            if (left != 0) allocatesOnlyZeros = false;
            surplus -= affordable;
        }
    }

    // ------------------------------------------------------------------ guarantees

    /// @notice Folds a finalized target channel's outcome back into the
    /// guarantee that funds it in a finalized source (ledger) channel.
    function reclaim(ReclaimArgs calldata args) external {
        (uint48 turnNumRecord, uint48 finalizesAt) = _requireFinalizedWith(
            args.sourceChannelId, args.sourceStateHash, keccak256(args.sourceOutcomeBytes)
        );
        SingleAssetExit[] memory source = abi.decode(args.sourceOutcomeBytes, (SingleAssetExit[]));
        Allocation[] memory sourceAllocations = source[args.sourceAssetIndex].allocations;
        Allocation memory guarantee = sourceAllocations[args.indexOfTargetInSource];
        require(guarantee.allocationType == GUARANTEE, "not a guarantee allocation");
        SingleAssetExit[] memory target = abi.decode(args.targetOutcomeBytes, (SingleAssetExit[]));
        require(
            target[args.targetAssetIndex].asset == source[args.sourceAssetIndex].asset,
            "targetAsset != guaranteeAsset"
        );
        _requireFinalizedWith(
            guarantee.destination, args.targetStateHash, keccak256(args.targetOutcomeBytes)
        );
        source[args.sourceAssetIndex].allocations = compute_reclaim_effects(
            sourceAllocations, target[args.targetAssetIndex].allocations, args.indexOfTargetInSource
        );
        statusOf[args.sourceChannelId] = _status(
            turnNumRecord, finalizesAt, args.sourceStateHash, keccak256(abi.encode(source))
        );
        emit Reclaimed(args.sourceChannelId, args.sourceAssetIndex);
    }

    /// @notice The source allocations after removing the guarantee at
    /// `indexOfTargetInSource` and crediting its left and right parties with
    /// the target's first and second allocations.
    function compute_reclaim_effects(
        Allocation[] memory sourceAllocations,
        Allocation[] memory targetAllocations,
        uint256 indexOfTargetInSource
    ) public pure returns (Allocation[] memory result) {
        require(indexOfTargetInSource < sourceAllocations.length, "could not find target");
        Allocation memory guarantee = sourceAllocations[indexOfTargetInSource];
        (bytes32 left, bytes32 right) = abi.decode(guarantee.metadata, (bytes32, bytes32));
        result = new Allocation[](sourceAllocations.length - 1);
        bool leftFound;
        bool rightFound;
        uint256 reclaimed;
        uint256 k = 0;
        for (uint256 i = 0; i < sourceAllocations.length; i++) {
            if (i == indexOfTargetInSource) continue;
            Allocation memory a = sourceAllocations[i];
            uint256 amount = a.amount;
            if (!leftFound && a.destination == left) {
                amount += targetAllocations[0].amount;
                reclaimed += targetAllocations[0].amount;
                leftFound = true;
            }
            if (!rightFound && a.destination == right) {
                amount += targetAllocations[1].amount;
                reclaimed += targetAllocations[1].amount;
                rightFound = true;
            }
            result[k++] = Allocation(a.destination, amount, a.allocationType, a.metadata);
        }
        require(leftFound, "could not find left");
        require(rightFound, "could not find right");
        require(reclaimed == guarantee.amount, "totalReclaimed!=guarantee.amount");
    }

    // ------------------------------------------------------------------ internals

    function _requireConcludable(
        FixedPart calldata fixedPart,
        SignedVariablePart calldata candidate
    )
        internal
        view
        returns (bytes32 channelId)
    {
        channelId = _channelId(fixedPart);
        (, uint48 finalizesAt,) = _unpack(statusOf[channelId]);
        require(finalizesAt == 0 || finalizesAt > block.timestamp, "Channel finalized.");
        require(candidate.variablePart.isFinal, "State must be final");
        bytes32 stateHash = _stateHash(channelId, candidate.variablePart);
        uint256 signedBy = _signedBy(fixedPart.participants, stateHash, candidate.sigs);
        require(SignerMask.isUnanimous(signedBy, fixedPart.participants.length), "!unanimous");
    }

    /// @dev Pays every allocation of every asset from the channel's holdings;
    /// the channel status is then cleared when nothing is left owed, else
    /// re-fingerprinted with what is.
    function _transferAll(
        bytes32 channelId,
        SingleAssetExit[] calldata outcome,
        bytes32 stateHash,
        uint48 turnNumRecord,
        uint48 finalizesAt
    ) internal {
        (uint256[][] memory paid, uint256[] memory initialHoldings, bool settled) =
            _computePayouts(channelId, outcome);
        _debit(channelId, outcome, paid, initialHoldings);
        statusOf[channelId] = settled
            ? bytes32(0)
            : _status(turnNumRecord, finalizesAt, stateHash, _remainingHash(outcome, paid));
        for (uint256 a = 0; a < outcome.length; a++) {
            Allocation[] calldata allocations = outcome[a].allocations;
            for (uint256 i = 0; i < allocations.length; i++) {
                _payOut(outcome[a].asset, allocations[i].destination, paid[a][i]);
            }
        }
    }

    /// @dev What each allocation gets, in order, from the holdings read before any change.
    function _computePayouts(bytes32 channelId, SingleAssetExit[] calldata outcome)
        internal
        view
        returns (uint256[][] memory paid, uint256[] memory initialHoldings, bool settled)
    {
        paid = new uint256[][](outcome.length);
        initialHoldings = new uint256[](outcome.length);
        settled = true;
        for (uint256 a = 0; a < outcome.length; a++) {
            Allocation[] calldata allocations = outcome[a].allocations;
            uint256 surplus = holdings[outcome[a].asset][channelId];
            initialHoldings[a] = surplus;
            uint256[] memory amounts = new uint256[](allocations.length);
            for (uint256 i = 0; i < allocations.length; i++) {
                require(allocations[i].allocationType != GUARANTEE, "cannot transfer a guarantee");
                uint256 owed = allocations[i].amount;
                uint256 affordable = owed < surplus ? owed : surplus;
                if (affordable != owed) settled = false;
                amounts[i] = affordable;
                surplus -= affordable;
            }
            paid[a] = amounts;
        }
    }

    function _debit(
        bytes32 channelId,
        SingleAssetExit[] calldata outcome,
        uint256[][] memory paid,
        uint256[] memory initialHoldings
    ) internal {
        for (uint256 a = 0; a < outcome.length; a++) {
            uint256 total = 0;
            for (uint256 i = 0; i < paid[a].length; i++) total += paid[a][i];
            mapping(bytes32 => uint256) storage held = holdings[outcome[a].asset];
            uint256 finalHoldings = held[channelId] - total;
            held[channelId] = finalHoldings;
            emit AllocationUpdated(channelId, a, initialHoldings[a], finalHoldings);
        }
    }

    /// @dev Hash of `outcome` with the `paid` amounts taken off its allocations.
    function _remainingHash(SingleAssetExit[] calldata outcome, uint256[][] memory paid)
        internal
        pure
        returns (bytes32)
    {
        SingleAssetExit[] memory remaining = outcome;
        for (uint256 a = 0; a < remaining.length; a++) {
            for (uint256 i = 0; i < remaining[a].allocations.length; i++) {
                remaining[a].allocations[i].amount -= paid[a][i];
            }
        }
        return keccak256(abi.encode(remaining));
    }

    /// @dev Sends to an external address, or credits another channel's holdings.
    function _payOut(address asset, bytes32 destination, uint256 amount) internal {
        if (amount == 0) return;
        if (!_isExternal(destination)) {
            holdings[asset][destination] += amount;
            return;
        }
        address to = address(uint160(uint256(destination)));
        if (asset == address(0)) {
            (bool ok,) = to.call{value: amount}("");
            require(ok, "Could not transfer ETH");
        } else {
            _callToken(asset, abi.encodeCall(IERC20Transfers.transfer, (to, amount)));
        }
    }

    /// @dev Calls a token; accepts tokens that return nothing, rejects a false
    /// return, and passes on the token's own revert reason.
    function _callToken(address token, bytes memory data) internal {
        require(token.code.length != 0, "Token is not a contract");
        (bool ok, bytes memory ret) = token.call(data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(ret, 32), mload(ret))
            }
        }
        require(ret.length == 0 || abi.decode(ret, (bool)), "Token transfer failed");
    }

    function _finalizedOutcome(bytes32 channelId, bytes32 stateHash, bytes calldata outcomeBytes)
        internal
        view
        returns (SingleAssetExit[] memory)
    {
        _requireFinalizedWith(channelId, stateHash, keccak256(outcomeBytes));
        return abi.decode(outcomeBytes, (SingleAssetExit[]));
    }

    /// @dev Requires the channel finalized with this state and outcome hash; returns its status.
    function _requireFinalizedWith(bytes32 channelId, bytes32 stateHash, bytes32 outcomeHash)
        internal
        view
        returns (uint48 turnNumRecord, uint48 finalizesAt)
    {
        uint160 fingerprint;
        (turnNumRecord, finalizesAt, fingerprint) = _unpack(statusOf[channelId]);
        _requireFinalized(finalizesAt);
        require(fingerprint == _fingerprint(stateHash, outcomeHash), "incorrect fingerprint");
    }

    /// @dev Asks the channel's app whether `candidate` is supported; returns its state hash.
    function _requireSupported(
        FixedPart calldata fixedPart,
        bytes32 channelId,
        SignedVariablePart[] calldata proof,
        SignedVariablePart calldata candidate
    ) internal view returns (bytes32 stateHash) {
        RecoveredVariablePart[] memory recoveredProof;
        RecoveredVariablePart memory recovered;
        (recoveredProof, recovered, stateHash) =
            _recoverAll(fixedPart, channelId, proof, candidate);
        (bool supported, string memory reason) = IForceMoveApp(fixedPart.appDefinition)
            .stateIsSupported(fixedPart, recoveredProof, recovered);
        require(supported, reason);
    }

    function _recoverAll(
        FixedPart calldata fixedPart,
        bytes32 channelId,
        SignedVariablePart[] calldata proof,
        SignedVariablePart calldata candidate
    )
        internal
        pure
        returns (
            RecoveredVariablePart[] memory recoveredProof,
            RecoveredVariablePart memory recovered,
            bytes32 candidateHash
        )
    {
        recoveredProof = new RecoveredVariablePart[](proof.length);
        for (uint256 i = 0; i < proof.length; i++) {
            bytes32 h = _stateHash(channelId, proof[i].variablePart);
            recoveredProof[i] = RecoveredVariablePart(
                proof[i].variablePart, _signedBy(fixedPart.participants, h, proof[i].sigs)
            );
        }
        candidateHash = _stateHash(channelId, candidate.variablePart);
        recovered = RecoveredVariablePart(
            candidate.variablePart, _signedBy(fixedPart.participants, candidateHash, candidate.sigs)
        );
    }

    /// @dev Bitmask of the participants whose signatures on `stateHash` are in `sigs`.
    function _signedBy(
        address[] calldata participants,
        bytes32 stateHash,
        Signature[] calldata sigs
    )
        internal
        pure
        returns (uint256 mask)
    {
        for (uint256 j = 0; j < sigs.length; j++) {
            address signer = SignerMask.recover(stateHash, sigs[j].v, sigs[j].r, sigs[j].s);
            uint256 index = _indexOf(participants, signer);
            if (index != type(uint256).max) mask |= uint256(1) << index;
        }
    }

    function _indexOf(address[] calldata participants, address who)
        internal
        pure
        returns (uint256)
    {
        for (uint256 i = 0; i < participants.length; i++) {
            if (participants[i] == who) return i;
        }
        return type(uint256).max;
    }

    function _channelId(FixedPart calldata fixedPart) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                fixedPart.participants,
                fixedPart.channelNonce,
                fixedPart.appDefinition,
                fixedPart.challengeDuration
            )
        );
    }

    function _stateHash(bytes32 channelId, VariablePart calldata variablePart)
        internal
        pure
        returns (bytes32)
    {
        return keccak256(
            abi.encode(
                channelId,
                variablePart.appData,
                variablePart.outcome,
                variablePart.turnNum,
                variablePart.isFinal
            )
        );
    }

    function _outcomeHash(SingleAssetExit[] calldata outcome) internal pure returns (bytes32) {
        return keccak256(abi.encode(outcome));
    }

    function _status(
        uint48 turnNumRecord,
        uint48 finalizesAt,
        bytes32 stateHash,
        bytes32 outcomeHash
    )
        internal
        pure
        returns (bytes32)
    {
        return bytes32(
            (uint256(turnNumRecord) << 208) | (uint256(finalizesAt) << 160)
                | uint256(_fingerprint(stateHash, outcomeHash))
        );
    }

    function _fingerprint(bytes32 stateHash, bytes32 outcomeHash) internal pure returns (uint160) {
        return uint160(uint256(keccak256(abi.encode(stateHash, outcomeHash))));
    }

    function _unpack(bytes32 status)
        internal
        pure
        returns (uint48 turnNumRecord, uint48 finalizesAt, uint160 fingerprint)
    {
        turnNumRecord = uint48(uint256(status) >> 208);
        finalizesAt = uint48(uint256(status) >> 160);
        fingerprint = uint160(uint256(status));
    }

    function _requireFinalized(uint48 finalizesAt) internal view {
        require(finalizesAt != 0 && finalizesAt <= block.timestamp, "Channel not finalized.");
    }

    /// @dev An external destination is an address left-padded with 12 zero bytes.
    function _isExternal(bytes32 destination) internal pure returns (bool) {
        return uint256(destination) >> 160 == 0;
    }
}
