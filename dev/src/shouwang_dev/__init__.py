"""What developers, tests and benchmarks need and service images never ship: the local stack launcher (`stack`), test
fixtures (`testing`), the demo county (`demo`) and the synthetic summit (`synthetic`)."""
