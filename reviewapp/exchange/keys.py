"""The node's Ed25519 signing key, and checking other nodes' signatures."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from reviewapp.storage import Store, StoreDamaged, write_new_file

RESTORE = (
    "Restore node_key.pem from a backup (python run.py restore --from BACKUP --data NEW_FOLDER)"
)


class NodeKey:
    """This node's signing key, made on first use and kept (0600) in the data folder.

    :raises StoreDamaged: the file is there but is not a key; it is never replaced.
    """

    def __init__(self, data_dir: str | Path) -> None:
        path = Path(data_dir) / "node_key.pem"
        if not path.exists():
            pem = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            write_new_file(path, pem, 0o600)
        try:
            self._key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(self._key, Ed25519PrivateKey):
                raise ValueError("not an Ed25519 key")
        except Exception as exc:  # noqa: BLE001 - whatever cryptography says, it is no key
            raise StoreDamaged(
                f"{path} is not a readable signing key ({exc}); it was left as it is. {RESTORE}.",
                path,
            ) from None
        raw = self._key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.public_key = base64.b64encode(raw).decode()
        self.fingerprint = fingerprint(self.public_key)

    def sign(self, data: bytes) -> str:
        return self._key.sign(data).hex()


def load_node_key(data_dir: str | Path, store: Store) -> NodeKey:
    """The node's key, made on first use only: once the node has signed a bundle, a
    missing or different key is damage (centres know it by that key), never replaced.

    :raises StoreDamaged: naming the file and how to restore it.
    """
    path = Path(data_dir) / "node_key.pem"
    exports = store.list_exports()  # newest first
    if exports and not path.exists():
        raise StoreDamaged(
            f"{path} is missing, but this node has signed {len(exports)} bundle(s) with it; a "
            f"new key would make other nodes distrust this one. {RESTORE}.",
            path,
        )
    key = NodeKey(data_dir)
    signer = next((e["signer"] for e in exports if e.get("signer")), None)
    if signer is not None and signer != key.fingerprint:
        raise StoreDamaged(
            f"{path} is not the key this node signed its bundles with ({signer}). {RESTORE}.",
            path,
        )
    return key


def fingerprint(public_key: str) -> str:
    """A short, readable identity for a public key (sha256, 16 bytes, grouped)."""
    digest = hashlib.sha256(base64.b64decode(public_key)).hexdigest()[:32]
    return ":".join(digest[i : i + 4] for i in range(0, 32, 4))


def verify(public_key: str, signature_hex: str, data: bytes) -> bool:
    """Whether ``signature_hex`` is the key's Ed25519 signature of ``data``."""
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key, validate=True))
        key.verify(bytes.fromhex(signature_hex), data)
    except (ValueError, InvalidSignature, TypeError):
        return False
    return True
