// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title Nitro value types shared by the adjudicator and the apps.
/// @dev Field order and widths are part of the ABI: ids and hashes computed
/// off chain depend on them.
interface INitroTypes {
    struct Signature {
        uint8 v;
        bytes32 r;
        bytes32 s;
    }

    struct AssetMetadata {
        uint8 assetType;
        bytes metadata;
    }

    struct Allocation {
        bytes32 destination;
        uint256 amount;
        uint8 allocationType;
        bytes metadata;
    }

    struct SingleAssetExit {
        address asset;
        AssetMetadata assetMetadata;
        Allocation[] allocations;
    }

    struct FixedPart {
        address[] participants;
        uint64 channelNonce;
        address appDefinition;
        uint48 challengeDuration;
    }

    struct VariablePart {
        SingleAssetExit[] outcome;
        bytes appData;
        uint48 turnNum;
        bool isFinal;
    }

    struct SignedVariablePart {
        VariablePart variablePart;
        Signature[] sigs;
    }

    /// @dev signedBy is a bitmask: bit i set when participants[i] signed.
    struct RecoveredVariablePart {
        VariablePart variablePart;
        uint256 signedBy;
    }
}
