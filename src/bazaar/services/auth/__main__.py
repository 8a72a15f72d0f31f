from bazaar.services.auth.bootstrap import main

main()
