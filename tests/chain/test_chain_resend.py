"""Transactions that are not mined are sent again, same nonce, higher fees (anvil,
automine off), and the fee rule itself."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import trio
from web3.exceptions import TransactionNotFound

from node.chain import NATIVE_ASSET, ChainClient, ChainService, Submitted, TxResult, bump_fees
from node.core import channel_id, constants
from node.core.errors import ChainError, InvalidValueError
from tests.actors import dev_key
from tests.chain.conftest import Chain


@pytest.fixture
def manual_mining(chain: Chain) -> Iterator[ChainClient]:
    """Blocks are mined only when the test says so."""
    client = chain.client(0)
    client.rpc("automine off", "evm_setAutomine", False)
    try:
        yield client
    finally:
        client.rpc("automine on", "evm_setAutomine", True)


def fees_of(client: ChainClient, submitted: Submitted) -> tuple[int, int]:
    tx: Any = client.w3.eth.get_transaction(submitted.tx_hash)
    assert tx["nonce"] == submitted.nonce
    return int(tx["maxFeePerGas"]), int(tx["maxPriorityFeePerGas"])


def raised_enough(new: tuple[int, int], old: tuple[int, int]) -> bool:
    numerator, denominator = (
        constants.chain_fee_bump_numerator,
        constants.chain_fee_bump_denominator,
    )
    return all(n * denominator >= o * numerator for n, o in zip(new, old, strict=True))


@pytest.mark.integration
@pytest.mark.slow
async def test_a_transaction_not_mined_is_sent_again_with_a_higher_fee(
    chain: Chain, manual_mining: ChainClient
) -> None:
    client = ChainClient(
        chain.anvil.url,
        dev_key(4),
        chain.deployment.adjudicator,
        resend_after_ms=300,
        resends_max=1,
        receipt_timeout_ms=20_000,
    )
    cid = channel_id(chain.fixed(nonce=40))
    reported: list[Submitted] = []
    fees: list[tuple[int, int]] = []
    resent = trio.Event()

    async def on_submitted(submitted: Submitted) -> None:
        reported.append(submitted)
        fees.append(fees_of(client, submitted))  # while it waits in the pool
        if len(reported) == 2:
            resent.set()

    results: list[TxResult] = []

    async def deposit() -> None:
        service = ChainService(client)
        results.append(await service.deposit(NATIVE_ASSET, cid, 0, 3, on_submitted=on_submitted))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(deposit)
        with trio.fail_after(10):
            await resent.wait()
        # The next block asks more than the first send offered: only the resend fits.
        manual_mining.rpc("base fee", "anvil_setNextBlockBaseFeePerGas", hex(fees[0][0] + 1))
        manual_mining.rpc("mine", "evm_mine")
    first, second = reported
    assert first.nonce == second.nonce
    assert first.tx_hash != second.tx_hash
    assert first.operation == second.operation == "deposit"
    assert raised_enough(fees[1], fees[0])
    (result,) = results
    assert (result.tx_hash, result.nonce) == (second.tx_hash, second.nonce)
    with pytest.raises(TransactionNotFound):
        client.w3.eth.get_transaction_receipt(first.tx_hash)
    assert client.holdings(NATIVE_ASSET, cid) == 3


@pytest.mark.integration
@pytest.mark.slow
async def test_resends_are_bounded_then_the_wait_gives_up(
    chain: Chain, manual_mining: ChainClient
) -> None:
    client = ChainClient(
        chain.anvil.url,
        dev_key(5),
        chain.deployment.adjudicator,
        resend_after_ms=150,
        resends_max=2,
        receipt_timeout_ms=400,
    )
    cid = channel_id(chain.fixed(nonce=41))
    reported: list[Submitted] = []
    fees: list[tuple[int, int]] = []

    async def on_submitted(submitted: Submitted) -> None:
        reported.append(submitted)
        fees.append(fees_of(client, submitted))

    service = ChainService(client)
    with pytest.raises(ChainError, match=r"^deposit: no receipt in time: (0x[0-9a-f]{64}(, )?){3}"):
        await service.deposit(NATIVE_ASSET, cid, 0, 1, on_submitted=on_submitted)
    assert len(reported) == 1 + 2
    assert len({s.nonce for s in reported}) == 1
    assert len({s.tx_hash for s in reported}) == 3
    assert raised_enough(fees[1], fees[0])
    assert raised_enough(fees[2], fees[1])
    # The last send is still in the pool; once mined, the deposit is done.
    manual_mining.rpc("mine", "evm_mine")
    assert client.w3.eth.get_transaction_receipt(reported[-1].tx_hash)["status"] == 1
    assert client.holdings(NATIVE_ASSET, cid) == 1


@pytest.mark.integration
async def test_a_mined_transaction_is_not_sent_again(chain: Chain) -> None:
    client = ChainClient(
        chain.anvil.url, dev_key(4), chain.deployment.adjudicator, resend_after_ms=1
    )
    reported: list[Submitted] = []

    async def on_submitted(submitted: Submitted) -> None:
        reported.append(submitted)

    cid = channel_id(chain.fixed(nonce=42))
    result = await ChainService(client).deposit(NATIVE_ASSET, cid, 0, 1, on_submitted=on_submitted)
    assert [s.tx_hash for s in reported] == [result.tx_hash]


def test_eip1559_fees_rise_by_an_eighth_at_least() -> None:
    tx = {"nonce": 7, "gas": 50_000, "maxFeePerGas": 3_000, "maxPriorityFeePerGas": 1_001}
    bumped = bump_fees(tx)
    assert bumped == {**tx, "maxFeePerGas": 3_375, "maxPriorityFeePerGas": 1_127}
    assert tx["maxFeePerGas"] == 3_000  # a copy
    again = bump_fees(bumped)
    assert raised_enough((again["maxFeePerGas"], again["maxPriorityFeePerGas"]), (3_375, 1_127))


def test_legacy_gas_price_rises_too() -> None:
    assert bump_fees({"gasPrice": 100, "nonce": 1}) == {"gasPrice": 113, "nonce": 1}


@pytest.mark.parametrize(("fee", "bumped"), [(0, 1), (1, 2), (8, 9), (9, 11), (16, 18)])
def test_small_fees_rise_by_at_least_one_wei(fee: int, bumped: int) -> None:
    assert bump_fees({"gasPrice": fee}) == {"gasPrice": bumped}
    result = bump_fees({"maxFeePerGas": fee, "maxPriorityFeePerGas": fee})
    assert result == {"maxFeePerGas": bumped, "maxPriorityFeePerGas": bumped}


def test_a_transaction_without_fees_cannot_be_bumped() -> None:
    with pytest.raises(InvalidValueError, match=r"^tx: has no fee fields"):
        bump_fees({"nonce": 1})
    with pytest.raises(InvalidValueError, match="maxPriorityFeePerGas"):
        bump_fees({"maxFeePerGas": 1})


def test_resend_settings_are_checked() -> None:
    with pytest.raises(InvalidValueError, match="resend_after_ms"):
        ChainClient("http://127.0.0.1:9", dev_key(0), resend_after_ms=0)
    with pytest.raises(InvalidValueError, match="resends_max"):
        ChainClient("http://127.0.0.1:9", dev_key(0), resends_max=-1)
