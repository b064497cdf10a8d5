"""The console service: accounts, sign-in and the web pages of secretaries, streets and agencies."""
