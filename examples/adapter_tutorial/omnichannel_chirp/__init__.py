"""omnichannel-chirp: the adapter built in the "write an adapter" tutorial.

Chirp is a made-up network; its sandbox (``omnichannel_chirp.sandbox``) is the
only Chirp server there is.
"""

from ._adapter import ChirpAdapter as ChirpAdapter
from ._adapter import ChirpSettings as ChirpSettings

__all__ = ["ChirpAdapter", "ChirpSettings"]
