"""Built-in PI Web API simulator: a deterministic synthetic plant served over real HTTP and WebSocket.

`plant` holds the ground truth (pure functions of seed, tag and time); `server` runs it behind uvicorn;
`command` is `pi-platform simulate`. See README.md in this folder for the plant layout, edge-case tags,
faults and the admin API.
"""
