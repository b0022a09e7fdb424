"""scnode: a peer-to-peer Nitro state-channel node with an event-sourced,
WASM-derived channel state. See README.md and docs/adr/."""
