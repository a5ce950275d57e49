"""What people see: training progress (`progress`), command output (`printing`) and the one
number and duration formatter both use (`fmt`)."""
