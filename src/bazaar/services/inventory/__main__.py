"""`python -m bazaar.services.inventory [serve|migrate|seed FILE]`"""

from bazaar.services.inventory.bootstrap import main

main()
