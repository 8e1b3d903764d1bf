"""The demo tenant configuration shipped with the package."""

from pathlib import Path

DEMO_CONFIG = Path(__file__).resolve().parent / "demo.yaml"
DEMO_TENANT = "820188ff-2036-4924-b80f-d11610735d86"
DEMO_REALM = "demo"
