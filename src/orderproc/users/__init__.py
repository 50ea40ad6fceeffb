"""The users service: accounts, login and tokens, profiles, roles, cash, audit log."""
