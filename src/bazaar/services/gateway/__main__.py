from bazaar.services.gateway.bootstrap import main

main()
