from zooflow.cli import main

main()
