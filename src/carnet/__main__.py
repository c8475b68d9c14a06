from carnet.cli.main import main

main()
