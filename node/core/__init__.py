"""Pure Nitro core: values, ABI encodings, hashes, signatures and the protobuf codec.

No I/O here: everything is a frozen value or a pure function.
"""

from node.core._address import address_from_bytes as address_from_bytes
from node.core._address import address_to_bytes as address_to_bytes
from node.core._address import address_to_destination as address_to_destination
from node.core._address import destination_to_address as destination_to_address
from node.core._address import is_address as is_address
from node.core._address import is_external_destination as is_external_destination
from node.core._address import to_checksum_address as to_checksum_address
from node.core._codec import allocation_from_proto as allocation_from_proto
from node.core._codec import allocation_to_proto as allocation_to_proto
from node.core._codec import fixed_part_from_proto as fixed_part_from_proto
from node.core._codec import fixed_part_to_proto as fixed_part_to_proto
from node.core._codec import guarantee_from_proto as guarantee_from_proto
from node.core._codec import guarantee_to_proto as guarantee_to_proto
from node.core._codec import signed_state_from_proto as signed_state_from_proto
from node.core._codec import signed_state_to_proto as signed_state_to_proto
from node.core._codec import single_asset_exit_from_proto as single_asset_exit_from_proto
from node.core._codec import single_asset_exit_to_proto as single_asset_exit_to_proto
from node.core._codec import state_from_proto as state_from_proto
from node.core._codec import state_to_proto as state_to_proto
from node.core._codec import uint256_from_bytes as uint256_from_bytes
from node.core._codec import uint256_to_bytes as uint256_to_bytes
from node.core._codec import voucher_from_proto as voucher_from_proto
from node.core._codec import voucher_to_proto as voucher_to_proto
from node.core._encoding import challenge_hash as challenge_hash
from node.core._encoding import channel_id as channel_id
from node.core._encoding import encode_exit as encode_exit
from node.core._encoding import outcome_hash as outcome_hash
from node.core._encoding import state_hash as state_hash
from node.core._encoding import voucher_hash as voucher_hash
from node.core._guarantee import Guarantee as Guarantee
from node.core._guarantee import GuaranteeMetadata as GuaranteeMetadata
from node.core._guarantee import decode_guarantee_metadata as decode_guarantee_metadata
from node.core._guarantee import encode_guarantee_metadata as encode_guarantee_metadata
from node.core._hash import keccak256 as keccak256
from node.core._json import message_to_json as message_to_json
from node.core._signing import Signer as Signer
from node.core._signing import recover_challenge_signer as recover_challenge_signer
from node.core._signing import recover_state_signer as recover_state_signer
from node.core._signing import recover_voucher as recover_voucher
from node.core._signing import recover_voucher_signer as recover_voucher_signer
from node.core._signing import sign_challenge as sign_challenge
from node.core._signing import sign_state as sign_state
from node.core._signing import sign_voucher as sign_voucher
from node.core._signing import verify_signed_state as verify_signed_state
from node.core._types import Allocation as Allocation
from node.core._types import FixedPart as FixedPart
from node.core._types import SignedState as SignedState
from node.core._types import SingleAssetExit as SingleAssetExit
from node.core._types import State as State
from node.core._types import Voucher as Voucher
from node.core.errors import InvalidSignatureError as InvalidSignatureError
from node.core.errors import InvalidValueError as InvalidValueError
