from medix.cli import main

main()
