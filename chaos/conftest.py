"""The drills' fixtures come with the plugin (`opsdrill.plugin.drills`)."""
