from slmdeploy.cli.main import main

main()
