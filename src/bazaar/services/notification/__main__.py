from bazaar.services.notification.bootstrap import main

main()
