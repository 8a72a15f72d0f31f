from bazaar.services.catalog.bootstrap import main

main()
