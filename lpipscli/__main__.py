from lpipscli.cli import main

main()
