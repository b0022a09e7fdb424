"""Deposits and holdings on anvil: native coin and ERC20, and the errors."""

from __future__ import annotations

import pytest
import trio

from node.chain import NATIVE_ASSET, ChainClient, ChainService, Submitted
from node.core import address_to_destination, channel_id
from node.core.errors import ChainError
from tests.actors import dev_key
from tests.chain.conftest import Chain

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ETHER = 10**18


async def test_native_deposits_accumulate_in_holdings(chain: Chain) -> None:
    cid = channel_id(chain.fixed(nonce=1))
    alice, bob = chain.service(1), chain.service(2)
    first = await alice.deposit(NATIVE_ASSET, cid, 0, 3 * ETHER)
    assert await alice.holdings(NATIVE_ASSET, cid) == 3 * ETHER
    second = await bob.deposit(NATIVE_ASSET, cid, 3 * ETHER, 2 * ETHER)
    assert await bob.holdings(NATIVE_ASSET, cid) == 5 * ETHER
    assert second.block_number > first.block_number
    assert first.gas_used > second.gas_used > 0  # the first deposit creates the slot


async def test_erc20_deposit_approves_first_then_deposits(chain: Chain) -> None:
    token = chain.deployment.token
    assert token is not None
    service = chain.service(3)
    chain.fund_token(service.address, 500)
    cid = channel_id(chain.fixed(nonce=2))
    sent: list[str] = []

    async def on_submitted(submitted: Submitted) -> None:
        sent.append(submitted.operation)

    await service.deposit(token, cid, 0, 400, on_submitted=on_submitted)
    assert sent == ["approve", "deposit"]
    assert await service.holdings(token, cid) == 400
    assert chain.token_balance(service.address) == 100
    assert await service.holdings(NATIVE_ASSET, cid) == 0
    # The allowance is used up: the next deposit approves again.
    await service.deposit(token, cid, 400, 100, on_submitted=on_submitted)
    assert sent == ["approve", "deposit", "approve", "deposit"]
    assert await service.holdings(token, cid) == 500


async def test_expected_held_mismatch_is_a_clear_error(chain: Chain) -> None:
    cid = channel_id(chain.fixed(nonce=3))
    service = chain.service(1)
    await service.deposit(NATIVE_ASSET, cid, 0, ETHER)
    with pytest.raises(ChainError, match=r"^deposit: reverted: held != expectedHeld$"):
        await service.deposit(NATIVE_ASSET, cid, 0, ETHER)
    assert await service.holdings(NATIVE_ASSET, cid) == ETHER


async def test_insufficient_funds_is_a_clear_error(chain: Chain) -> None:
    poor = ChainService(ChainClient(chain.anvil.url, b"\x42" * 32, chain.deployment.adjudicator))
    cid = channel_id(chain.fixed(nonce=4))
    with pytest.raises(ChainError, match=r"^deposit: insufficient funds") as raised:
        await poor.deposit(NATIVE_ASSET, cid, 0, ETHER)
    assert str(raised.value).endswith(f"account {poor.address}, balance 0 wei")


async def test_erc20_deposit_without_tokens_reverts(chain: Chain) -> None:
    token = chain.deployment.token
    assert token is not None
    service = chain.service(4)
    cid = channel_id(chain.fixed(nonce=5))
    with pytest.raises(
        ChainError, match=r"^deposit: reverted: ERC20: transfer amount exceeds balance$"
    ):
        await service.deposit(token, cid, 0, 10)


async def test_deposit_to_an_external_destination_is_refused(chain: Chain) -> None:
    service = chain.service(1)
    destination = address_to_destination(service.address)
    with pytest.raises(ChainError, match="Deposit to external destination"):
        await service.deposit(NATIVE_ASSET, destination, 0, 1)


async def test_concurrent_deposits_from_one_key_get_distinct_nonces(chain: Chain) -> None:
    service = chain.service(5)
    channels = [channel_id(chain.fixed(nonce=100 + i)) for i in range(4)]
    results = []

    async def deposit(cid: bytes) -> None:
        results.append(await service.deposit(NATIVE_ASSET, cid, 0, 7))

    async with trio.open_nursery() as nursery:
        for cid in channels:
            nursery.start_soon(deposit, cid)
    nonces = sorted(r.nonce for r in results)
    assert nonces == list(range(nonces[0], nonces[0] + 4))
    for cid in channels:
        assert await service.holdings(NATIVE_ASSET, cid) == 7


async def test_unreachable_rpc_is_a_clear_error() -> None:
    client = ChainClient("http://127.0.0.1:9", dev_key(0), "0x" + "11" * 20)
    with pytest.raises(ChainError, match=r"^holdings: chain not reachable"):
        await ChainService(client).holdings(NATIVE_ASSET, b"\x01" * 32)


async def test_a_transaction_that_reverts_when_mined_is_a_clear_error(chain: Chain) -> None:
    """Two deposits that both expect empty holdings, mined in one block: the
    second passes its gas estimate but reverts in the block."""
    client = chain.client(1)
    adjudicator = client.require_adjudicator()
    cid = channel_id(chain.fixed(nonce=6))
    client.rpc("automine off", "evm_setAutomine", False)
    try:
        deposit = adjudicator.functions.deposit(NATIVE_ASSET, cid, 0, 1)
        deposits = [client.submit("deposit", deposit, value=1) for _ in range(2)]
        client.rpc("mine", "evm_mine")
    finally:
        client.rpc("automine on", "evm_setAutomine", True)
    first = client.wait(deposits[0])
    with pytest.raises(ChainError, match=r"^deposit: transaction 0x[0-9a-f]{64} reverted in block"):
        client.wait(deposits[1])
    with pytest.raises(ChainError, match=r"\(reverted: held != expectedHeld\)$"):
        client.wait(deposits[1])
    assert deposits[1].nonce == deposits[0].nonce + 1
    assert client.holdings(NATIVE_ASSET, cid) == 1
    assert first.block_number == client.block_number()


async def test_no_receipt_in_time_is_a_clear_error(chain: Chain) -> None:
    client = ChainClient(
        chain.anvil.url, dev_key(1), chain.deployment.adjudicator, receipt_timeout_ms=200
    )
    cid = channel_id(chain.fixed(nonce=7))
    client.rpc("automine off", "evm_setAutomine", False)
    try:
        deposit = client.require_adjudicator().functions.deposit(NATIVE_ASSET, cid, 0, 1)
        submitted = client.submit("deposit", deposit, value=1)
        with pytest.raises(ChainError, match=r"^deposit: no receipt in time"):
            client.wait(submitted)
    finally:
        client.rpc("automine on", "evm_setAutomine", True)
        client.rpc("mine", "evm_mine")
    # Once mined, the same submission does get its receipt.
    assert client.wait(submitted).block_number <= client.block_number()
    assert client.holdings(NATIVE_ASSET, cid) == 1


async def test_a_nonce_used_by_another_client_is_re_read_once(chain: Chain) -> None:
    first, second = chain.client(6), chain.client(6)  # one key, two nonce caches
    adjudicator = first.require_adjudicator()
    cids = [channel_id(chain.fixed(nonce=200 + i)) for i in range(3)]
    deposits = [adjudicator.functions.deposit(NATIVE_ASSET, cid, 0, 1) for cid in cids]
    a = first.transact("deposit", deposits[0], value=1)
    b = second.transact("deposit", deposits[1], value=1)
    # `first` still believes b's nonce is free: the node says "nonce too low", it re-reads.
    c = first.transact("deposit", deposits[2], value=1)
    assert [a.nonce, b.nonce, c.nonce] == [a.nonce, a.nonce + 1, a.nonce + 2]
