"""Getting messages to carriers: route choice, carrier links, the dispatcher."""
