"""Play the customer against the Chirp sandbox and read what our account sees.

Run it from this folder: ``python try_sandbox.py``.
"""

from __future__ import annotations

import anyio

from omnichannel_chirp.sandbox import ChirpSandbox


async def main() -> None:
    """Alice mentions us; we read the mentions feed in-process."""
    sandbox = ChirpSandbox(seed=1)
    sandbox.customer_mention("where is my parcel? 📦 https://example.com/o/7")
    async with sandbox.client() as http:  # in-process, authenticated as our account
        page = (await http.get("/mentions")).json()
    post = page["data"][0]
    print(post["author"]["handle"], "wrote:", post["text"])
    for entity in post["entities"]:
        print(entity["type"], entity["start"], entity["end"])


if __name__ == "__main__":
    anyio.run(main)
