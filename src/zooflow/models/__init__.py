"""One module per architecture. Each builder returns an ``nn.Module`` and each module says
which of its parameters form the groups a config can give learning rates to."""
