# Test guests: built by the guests helper.
.PHONY: guests
guests:
