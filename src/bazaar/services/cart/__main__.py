from bazaar.services.cart.bootstrap import main

main()
