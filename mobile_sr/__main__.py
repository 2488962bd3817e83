from mobile_sr.cli import main

main()
