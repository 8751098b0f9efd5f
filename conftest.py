pytest_plugins = ["opsmeter_runtime.testing"]
