--  Readings from the vehicle's temperature sensors.
package Sensors is

   type Celsius is delta 0.01 range -273.15 .. 1_000.0;

   type Sensor_Id is range 1 .. 8;

   type Reading is record
      Id    : Sensor_Id;
      Value : Celsius;
      Valid : Boolean;
   end record;

   type Reading_Array is array (Sensor_Id) of Reading;

   --  The mean of the valid readings; 0.0 when none is valid.
   function Mean (Readings : Reading_Array) return Celsius;

   --  True when any valid reading is above the limit.
   function Any_Above (Readings : Reading_Array; Limit : Celsius) return Boolean;

end Sensors;
