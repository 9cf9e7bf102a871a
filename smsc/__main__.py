from smsc.cli import main

main()
