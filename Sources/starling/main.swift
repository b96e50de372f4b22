import StarlingCLI

await StarlingCommand.start()
