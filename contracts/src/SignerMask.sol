// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title Helpers on signer bitmasks and Ethereum signed-message recovery.
library SignerMask {
    /// @notice Number of bits set in `mask`.
    function count(uint256 mask) internal pure returns (uint256 n) {
        while (mask != 0) {
            mask &= mask - 1;
            n++;
        }
    }

    /// @notice True when every one of `participantCount` participants signed.
    function isUnanimous(uint256 mask, uint256 participantCount) internal pure returns (bool) {
        return count(mask) == participantCount;
    }

    /// @notice The address that signed `digest` as an Ethereum signed message.
    function recover(bytes32 digest, uint8 v, bytes32 r, bytes32 s)
        internal
        pure
        returns (address signer)
    {
        bytes32 prefixed = keccak256(abi.encodePacked("\x19Ethereum Signed Message:\n32", digest));
        signer = ecrecover(prefixed, v, r, s);
        require(signer != address(0), "Invalid signature");
    }
}
