"""``python -m nets.letters``: see :mod:`nets.letters.command`."""

from .command import main

raise SystemExit(main())
