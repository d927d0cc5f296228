"""``python -m nets.letters``: see :mod:`nets.letters.command`."""

from nets.letters.command import main

raise SystemExit(main())
