import StarlingCLI

await StarlingCommand.main()
