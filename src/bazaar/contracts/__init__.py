"""What services share instead of code: the Python side of `contracts/`.

`events` and `quotes` are the pydantic models of the event payloads and of the price-quote
request/reply, mirroring `contracts/events/*.json` (tests/contracts holds them equal);
`generated/` is the code generated from `inventory.proto` (`make proto`; never edited).
Producers build these models, consumers validate against them: a field renamed here is
renamed for both sides at once, and the JSON Schemas say what a service in another
language must send.
"""
