# C unit tests.
.PHONY: unit
unit:
