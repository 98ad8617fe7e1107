"""``python -m pypto_jit``: see :mod:`pypto_jit.cli`."""

from pypto_jit.cli import main

raise SystemExit(main())
