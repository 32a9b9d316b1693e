"""`platform/` holds install files, not Python: `import platform` must stay the stdlib's."""

import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_platform_is_the_standard_library():
    assert not (ROOT / "platform" / "__init__.py").exists()
    assert callable(platform.python_version)
    # From the project root, where a platform/ folder sits on sys.path[0]:
    out = subprocess.run(
        [sys.executable, "-c", "import platform, uuid; print(platform.python_version()); print(uuid.uuid4())"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )
    assert out.stdout.splitlines()[0] == platform.python_version()
