"""Code generated from `contracts/` (see `make proto`); nothing here is written by hand."""
