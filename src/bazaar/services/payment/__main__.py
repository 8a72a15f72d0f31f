from bazaar.services.payment.bootstrap import main

main()
