"""Fast mode: random-direction probes per tensor (``probe``), localization of the wrong elements
by group testing (``localize``), and the results they give (``mode``). Internal."""
