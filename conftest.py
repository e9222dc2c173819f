# pytest only honours `pytest_plugins` in the rootdir's conftest: the project's own tests
# (testing/) drive the plugin through pytester.
pytest_plugins = ["pytester"]
