from bazaar.services.order.bootstrap import main

main()
