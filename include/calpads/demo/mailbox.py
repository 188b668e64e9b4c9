"""A local SMTP server (aiosmtpd) that saves every message it receives as a .eml
file: the demo's and the tests' stand-in for the district's mail relay. The messages can hold local record
ids and run links, so the folder is owner-only (0700) and each file 0600, whatever the umask."""

from __future__ import annotations

import argparse
import socket
import time
from pathlib import Path

from aiosmtpd.controller import Controller

from calpads.maintenance import private_dirs
from calpads.private_files import open_private


class SaveToFolder:
    def __init__(self, folder: Path):
        self.folder = folder
        private_dirs(self.folder)
        self.count = 0

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        self.count += 1
        name = f"{time.strftime('%Y%m%dT%H%M%S')}-{self.count:04d}.eml"
        with open_private(self.folder / name) as fh:
            fh.write(envelope.original_content or envelope.content)
        return "250 Message accepted for delivery"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def start(folder: Path, port: int = 0, host: str = "127.0.0.1") -> Controller:
    """Start the server in a thread; port 0 picks a free port (controller.port)."""
    controller = Controller(SaveToFolder(folder), hostname=host, port=port or free_port(host))
    controller.start()
    return controller


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=8025)
    ap.add_argument("--dir", type=Path, required=True)
    args = ap.parse_args()
    controller = start(args.dir, args.port)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
