"""The GHO stand-in, one job a module; `utils/gho_stub.py` is its command line and the names tests import.

wire            JSON as GHO writes it: encoding, error payloads, @odata.context URLs
query           reading a request's query: $count, the fields rows have, the keyset bound
indicator_rows  the rows served for each indicator and each query's matches encoded once
catalogue       the resources that are not indicator data: /api/Indicator, the country values
modes           mode settings (cap, paging, nextLink styles, ...) and their validation
paging          an indicator's data answered as the mode says
faults          the queue of faults waiting for matching requests
fault_answers   the hostile answers each fault kind writes to the socket
actions         data changes due right after the n-th data request (upstream changing mid-paging)
state           everything the handler threads share
control         the /_control/... endpoints of a stand-in run as its own process
handler         the HTTP request handler
server          StubServer: the stand-in in a background thread
cli             the command line
"""
